"""itsmd: the automated first responder between Alertmanager and the people on call."""

__version__ = "0.1.0"
