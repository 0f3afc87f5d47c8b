"""zero_sudo's standalone asyncio daemons (uvloop): the relay, and the runtime they share."""
