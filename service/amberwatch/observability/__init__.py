"""Operations: structured logs (``logs``), Prometheus metrics (``metrics``) and the request id both share."""
