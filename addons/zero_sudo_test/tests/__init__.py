from . import test_slug_mixin, test_trigram_indexes
