# Pure helpers (exceptions, settings, executor, stale_guard) import no Odoo, so that plain pytest
# runs them; the Odoo glue (config, pools, offload, session_store, coherence) imports Odoo.
