"""The health dashboard: live web pages over the views, guarded by the same API keys."""
