"""`cxj serve`: the HTTP service next to the workers (collector for feeders, customer profile for agents).

    auth.py      bearer tokens (stored hashed), the sources each may send, per-token rates (pure)
    feed.py      a POST body checked and validated as the pipeline validates it (pure)
    openapi.py   `/openapi.json`, built from the contract's models
    service.py   the aiohttp application: routes, metrics, the broker and ClickHouse behind them

Stateless: any number of replicas behind a load balancer; the pipeline stays the place of record.
"""
