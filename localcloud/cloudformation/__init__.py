"""CloudFormation: the resource types moto lacks, and the patches the CDK CLI's deploys need."""
