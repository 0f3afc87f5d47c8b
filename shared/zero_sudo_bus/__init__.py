"""zero_sudo's event bus: the one definition of the event protocol, the deterministic hash,
backoff, and the Redis subscriber library. Imported by the Odoo addons and by the daemons."""
