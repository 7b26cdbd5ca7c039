"""Execution: carrying out approved requests in MLflow, and keeping Quorum and MLflow in step.

- `jobs`: the transition job (idempotent, one execution at a time), its job id and retries;
- `reconciler`: the periodic run that repairs what a crash, an outage or a dead scheduler left;
- `attestation`: the signed approval proof written on each promoted version; `proof_keys`: the
  keys it is signed and verified with;
- `registry_events`: what the engine concludes from changes the sync observed (whose move it
  was; pending requests whose evidence changed);
- `reverts`: undoing out-of-band moves a policy says to revert;
- `guard`: the protection tags the guard inside MLflow reads, and its probe;
- `holder_history`: who held each target, and how each holding came about;
- `stalls`: transitions waiting for a worker nobody started; `sync_health`: syncs that keep
  failing.
"""
