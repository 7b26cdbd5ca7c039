"""Execution: carrying out approved requests in MLflow, and keeping Quorum and MLflow in step.

- `jobs`: the transition job, a thin RQ entry point; `executor`: what it runs (reads MLflow,
  moves the version unless it is there, records the move and what follows it); `locks`: one
  execution of a request, and one writer of a model's moves, at a time;
- `content_check`: the bytes in MLflow are still the ones approved, checked before a move;
- `reconciler`: the periodic run that repairs what a crash, an outage or a dead scheduler left;
- `attestation`: the signed approval proof written on each promoted version; `proof_keys`: the
  keys it is signed and verified with; `revocation`: the proofs of holdings a move ended;
- `registry_events`: what the engine concludes from changes the sync observed (whose move it
  was), before the decisions re-evaluate the pending requests;
- `reverts`: undoing out-of-band moves a policy says to revert;
- `guard`: the protection tags the guard inside MLflow reads, and its probe;
- `stalls`: transitions waiting for a worker nobody started; `sync_health`: syncs that keep
  failing.
"""
