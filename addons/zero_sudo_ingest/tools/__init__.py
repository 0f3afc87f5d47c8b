# Pure helpers (schema) import no Odoo, so that they are tested without a registry.
