"""Distributed mode: Kafka topics, the API's producer and the faust worker."""
