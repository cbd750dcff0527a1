"""Tasks on top of the shared encoder. Importing this package registers every built-in task in ``TASKS``.

Adding a task: write one module here with a :class:`~mtspeech.tasks.base.TaskConfig` subclass and a
``@register_task`` :class:`~mtspeech.tasks.base.Task` subclass, import it below, and enable it by name under
``model.tasks`` in a config (see docs/model.md).
"""

from __future__ import annotations

from mtspeech.tasks import accent, asr_ctc, classifiers, decoder, intent_text, slots, vad  # noqa: F401  (registers)
from mtspeech.tasks.base import TASKS, Task, TaskConfig, TaskLoss, get_task_class, register_task

__all__ = ["TASKS", "Task", "TaskConfig", "TaskLoss", "get_task_class", "register_task"]
