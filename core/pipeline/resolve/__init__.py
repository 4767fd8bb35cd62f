"""Resolve: link authors to CRM contacts (``matching``), score them (``influence``)."""
