"""SNS: the patch that sends subscribed functions the notification AWS sends."""
