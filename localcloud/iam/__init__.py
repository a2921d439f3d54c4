"""IAM: who is calling and whether AWS would let them."""
