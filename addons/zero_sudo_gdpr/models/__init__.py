from . import erase_wizard, gdpr_request, gdpr_rule, res_partner
