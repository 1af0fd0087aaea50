"""A download job's parts: the plan, huggingface_hub access and its errors, the cache layout, the transfer engine."""
