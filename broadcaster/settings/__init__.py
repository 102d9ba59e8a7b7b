"""The service's settings: the record, each kind of value's parser, the .env file, and their reading."""

from .buckets import BucketSettings
from .load import load_settings, lookalike_keys, raw_setting
from .record import DEFAULT_REWIND_SECONDS, MAX_REWIND_SECONDS, MOST_CLIPS, SETTINGS, Settings
from .rows import Setting
from .values import Address, SettingsError

__all__ = ["DEFAULT_REWIND_SECONDS", "MAX_REWIND_SECONDS", "MOST_CLIPS", "SETTINGS", "Address", "BucketSettings",
           "Setting", "Settings", "SettingsError", "load_settings", "lookalike_keys", "raw_setting"]
