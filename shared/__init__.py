"""The example's domain (orders, inventory, payments, signups, exports, thumbnails) and its configuration,
built on ``asyncstack.runtime``; shipped inside each example function's asset."""
