"""The audit trail: everything that happened, as an append-only hash chain.

- `chain`: `record`, which appends an event (and tells `reviews.signals.event_recorded`), and
  the hashing the chain is made of;
- `verification`: walking the chain, the verified checkpoint the reconciler extends, and the
  bounded check the audit page shows;
- `export`: the chain as CSV, safe to open in a spreadsheet.
"""
