"""What the review history says in aggregate, for staff: reviewer analytics (`analytics`) and
how the page and its CSV present them (`presentation`)."""
