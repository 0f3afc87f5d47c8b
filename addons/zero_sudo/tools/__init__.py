# Pure helpers (exceptions, settings, executor, stale_guard) import no Odoo, so that plain pytest
# runs them (settings imports Odoo only when asked for odoo.conf's section); the Odoo glue
# (pools, offload, session_store, coherence) imports Odoo.
