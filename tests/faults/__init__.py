"""Fault suite: a real 3-node OpenBao Raft cluster and real ``secretsd serve`` replicas."""
