"""A fleet of nodes on one configuration: the shared document in etcd (etcd.py), the
process that follows it on each node (follower.py), and how the master loads what it
hands over (loaders.py). See README, Fleet."""
