"""Notifiers (webhook, Slack, PagerDuty, email) and the durable outbox that delivers pages through them."""
