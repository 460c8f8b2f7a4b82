"""Fieldbook: a mobile-first, offline-capable CRM."""
