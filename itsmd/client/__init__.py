"""The command-line API client: `itsmd incidents|problems|alerts|runs|silences|audit ...` over HTTP."""
