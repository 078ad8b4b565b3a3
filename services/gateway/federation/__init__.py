"""Federation in the gateway: hub routes (peers, remote agents, federated kill-all),
spoke routes (signed commands and handshakes), the HTTP transport to peers and the
spoke's executor. Included in the app by ``services.gateway.federation.routes.router``."""
