from . import test_gdpr_at_scale, test_slug_mixin, test_trigram_indexes
