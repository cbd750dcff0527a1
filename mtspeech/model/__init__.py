"""The shared encoder, the decoder, their layers, the multi-task model and the model file (see docs/model.md).

Import from the submodules (``mtspeech.model.model``, ``mtspeech.model.package``): this package stays empty
because the task modules import the layers here, and the multi-task model imports the tasks.
"""
