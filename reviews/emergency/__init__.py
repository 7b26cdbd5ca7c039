"""Emergency paths, which are still approvals: rolling a target back, and breaking glass.

- `rollback`: a request to put back a version that held a target before, decided by the
  policy's `rollback:` rules;
- `break_glass`: a member of the policy's break-glass groups moves a version at once, with a
  reason;
- `ratification`: the quorum ratifies a break-glass move afterwards; unratified, staff are told
  and, if the policy says so, the move is reverted.
"""
