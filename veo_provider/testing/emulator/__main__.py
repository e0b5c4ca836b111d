"""``python -m veo_provider.testing.emulator``: serve an emulator until killed."""

from veo_provider.testing.emulator.cli import main

if __name__ == "__main__":
    main()
