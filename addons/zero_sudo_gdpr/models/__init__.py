from . import gdpr_rule, gdpr_request
