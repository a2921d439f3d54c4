"""Step Functions: the patches that make moto's interpreter run deployed state machines as AWS does."""
