"""Infrastructure shared by Quorum's apps that is no part of the review domain: locks (and, in
time, queues, HTTP and the signing key, which still live in `quorum/`)."""
