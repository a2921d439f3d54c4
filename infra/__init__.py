"""CDK constructs of asyncstack: one construct per concern, a stack that composes them."""
