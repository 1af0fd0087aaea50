"""The models' life on the volume after they are ready: update checks, last use, room and eviction."""
