"""Decisions: how a request is opened, voted on and decided, and what that rests on.

- `opening`: `request_create`, the one function that opens a request, and the version holding a
  target now;
- `voting`: who may vote and `vote_cast`;
- `deciding`: `decide`, the one function that decides a request, and cancellation, expiry and an
  admin's retry;
- `counting`: how approvals count (each person once, for one group), and approvals that stop
  counting when what they saw changed;
- `sizing`: what a request will take (sign-offs, gates decided at once), for the request and
  for every preview;
- `gates`: metric gates; `escalation`: approvals that scale with the evidence packet, and
  `reevaluation`: open requests decided again when that packet arrives;
- `standing`: where a request stands, in words; `related`: earlier rejections and open neighbours;
- `promotion`: what a version may be requested for, as the promotion form shows it.
"""
