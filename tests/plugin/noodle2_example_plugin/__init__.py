"""An example noodle2 plugin: the definitions a study file's [custom] section takes, shipped in
a package.  ECOS is a list; `metrics` shows that a function returning one works too."""

ECOS = [{
    "name": "upsize_first_driver",
    "eco_class": "topology_neutral",
    "description": "Upsize the first driver of each of the worst paths, unconditionally (an example).",
    "params": [{"name": "paths", "kind": "int", "min": 1, "max": 20, "default": 2,
                "doc": "worst paths whose first driver grows"}],
    "tcl": """
  set n 0
  foreach pe [n2_worst_ends $paths] {
    foreach pin [[$pe path] pins] {
      if {[$pin is_driver] && ![$pin is_top_level_port]} {
        incr n [n2_resize [$pin instance] 1]
        break
      }
    }
  }
  return $n
""",
}]


def metrics():
    return [{"name": "worst_arrival_ns", "source": "sta.timing.rpt", "regex": r"^\s*(-?[\d.]+)\s+data arrival time",
             "unit": "ns", "direction": "min"}]
