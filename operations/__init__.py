"""Running Quorum as a service: /metrics for Prometheus, /healthz and /readyz for probes and load
balancers, and structured (JSON) logs that carry a request id into the jobs a request queues.

No domain logic lives here: each module reads what the other parts store (`metrics`, `health`)
or frames what they log (`logging`).
"""
