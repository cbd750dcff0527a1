from mtspeech.cli import main

main()
