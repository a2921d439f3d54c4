"""Code the Lambda handlers share and users reuse: domain logic, data access, the consumer
framework, the batch publisher. Shipped inside each function's asset."""
