"""The API's request and response bodies: what crosses the network, validated."""
