"""Ray Tune's seams (searcher, scheduler, callback), packing, the trial side of Tune, and the run."""
