"""HTTP surface of tradelane: the REST API (``web.api``) and, later, the dashboard templates."""
