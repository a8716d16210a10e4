"""cors-scanner: continuous, policy-aware CORS scanning."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/cors-scanner/cors-scanner"
