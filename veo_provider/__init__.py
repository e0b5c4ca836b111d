"""Apache Airflow provider for Google Veo video generation (AceData Cloud Veo API)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "get_provider_info"]


def get_provider_info() -> dict:
    """Describe the provider to Airflow's ProvidersManager (kept import-free: it runs at every start)."""
    return {
        "package-name": "airflow-provider-veo",
        "name": "Veo (AceData Cloud)",
        "description": "Generate, upscale, extend and edit videos with Google Veo through the "
        "AceData Cloud Veo API: deferrable, exactly-once, with webhook callbacks.",
        "versions": [__version__],
        # Mounts the callback receiver in the api-server at /veo (see docs/callbacks.md).
        "extra-links": ["veo_provider.links.VeoVideoLink"],
        "plugins": [{"name": "veo_callbacks", "plugin-class": "veo_provider.callbacks.plugin.VeoCallbackPlugin"}],
        "connection-types": [
            {
                "connection-type": "veo",
                "hook-class-name": "veo_provider.hooks.veo.VeoHook",
                "hook-name": "Veo (AceData Cloud)",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "extra"],
                    "relabeling": {"host": "Base URL", "password": "API token"},
                    "placeholders": {
                        "host": "https://api.acedata.cloud",
                        "password": "AceData Cloud API token (Bearer)",
                    },
                },
                "conn-fields": {
                    "timeout": {
                        "label": "Read timeout (seconds)",
                        "description": "Timeout of one HTTP read; submissions wait longer when the "
                        "API answers synchronously (see submit_timeout).",
                        "schema": {"type": ["number", "null"], "default": 30, "minimum": 1},
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (seconds)",
                        "schema": {"type": ["number", "null"], "default": 10, "minimum": 1},
                    },
                    "submit_timeout": {
                        "label": "Synchronous submission timeout (seconds)",
                        "description": "Only used when a submission asks the API to hold the request "
                        "until the video is done (no callback, not async).",
                        "schema": {"type": ["number", "null"], "default": 600, "minimum": 1},
                    },
                    "max_retries": {
                        "label": "Read retries",
                        "description": "Attempts for reads on 429/5xx/transport errors. Paid "
                        "submissions are never resent once they may have reached the API.",
                        "schema": {"type": ["integer", "null"], "default": 5, "minimum": 1},
                    },
                    "max_download_mb": {
                        "label": "Largest video download (MB)",
                        "description": "Downloads bigger than this (1 MB = 1024 x 1024 bytes) are refused "
                        "before or while streaming, so a wrong URL cannot fill the disk.",
                        "schema": {"type": ["number", "null"], "default": 4096, "minimum": 1},
                    },
                    "get1080p_action": {
                        "label": "1080p fetch action spelling",
                        "description": "How this API spells the 1080p fetch action.",
                        "schema": {
                            "type": ["string", "null"],
                            "default": "get1080p",
                            "enum": ["get1080p", "get_1080p"],
                        },
                    },
                    "callback_base_url": {
                        "label": "Public callback base URL",
                        "description": "Public URL where the Veo API can reach this Airflow's "
                        "callback receiver, e.g. https://airflow.example.com/veo. Empty: poll.",
                        "schema": {"type": ["string", "null"], "format": "url"},
                    },
                    "callback_secret": {
                        "label": "Callback signing secret",
                        "description": "HMAC-SHA256 secret that signs callback URLs (32+ characters). "
                        "Rotate by moving the old value to 'Previous callback secret'.",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "callback_secret_previous": {
                        "label": "Previous callback secret",
                        "description": "Still accepted for callbacks signed before a rotation.",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                },
            }
        ],
    }
