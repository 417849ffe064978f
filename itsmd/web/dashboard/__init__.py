"""The web dashboard (`GET /`, viewer): server-rendered pages over the same storage reads as the JSON API."""
