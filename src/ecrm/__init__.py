"""ecrm: a daily CRM data warehouse for online shops."""
