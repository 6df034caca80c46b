# noodle2 ECO library for OpenSTA 2.0.17 (Tcl API facts: ../shared/TOOLS.md).
#
# Every proc works on objects (instances, pins, nets, ports), never on names looked up again:
# Yosys names nets with '/', '$', '[' and '.', and `get_nets NAME` silently finds nothing for
# them.  Names are used only to order candidates and to name new objects.  Cell facts (size
# families, buffers, inverters, commutative inputs) come from the Liberty via n2_family,
# n2_buffers, n2_inverters, n2_symmetric and n2_io, written ahead of this file.  Each n2_eco_*
# proc returns how many changes it kept; every change is kept only when timing improved.

# --- objects --------------------------------------------------------------------------------------

proc n2_cell {inst} { return [get_property $inst ref_name] }
proc n2_lib_cell {name} { return [lindex [get_lib_cells */$name] 0] }
proc n2_top {} { return [sta::top_instance] }

# Pins of a net (top-level ports included, with their driver/load sense).
proc n2_net_pins {net} {
  set out {}
  set it [$net connected_pin_iterator]
  while {[$it has_next]} { lappend out [$it next] }
  $it finish
  return $out
}

# An instance's pins that answer 1 to `kind` (is_driver or is_load).
proc n2_pins {inst kind} {
  set out {}
  set it [$inst pin_iterator]
  while {[$it has_next]} { set p [$it next]; if {[$p $kind]} { lappend out $p } }
  $it finish
  return $out
}
proc n2_outputs {inst} { return [n2_pins $inst is_driver] }
proc n2_inputs {inst} { return [n2_pins $inst is_load] }

proc n2_cmp_name {a b} { return [string compare [get_full_name $a] [get_full_name $b]] }

# Loads of a net that can be moved to another net: instance input pins, by name.
proc n2_loads {net} {
  set out {}
  foreach p [n2_net_pins $net] {
    if {[$p is_load] && ![$p is_top_level_port]} { lappend out $p }
  }
  return [lsort -command n2_cmp_name $out]
}

# Reconnect one instance pin to another net.
proc n2_move {pin net} {
  set inst [$pin instance]
  set port [$pin port]
  sta::disconnect_pin_cmd $pin
  sta::connect_pin_cmd $inst $port $net
}

proc n2_make_instance {name cell} { return [sta::make_instance_cmd $name [n2_lib_cell $cell] [n2_top]] }
proc n2_make_net {name} { return [sta::make_net_cmd $name [n2_top]] }
proc n2_connect {inst port_name net} { sta::connect_pin_cmd $inst [[$inst cell] find_port $port_name] $net }

# Remove an instance this library made, and its output net once nothing else uses it.
proc n2_remove {inst} {
  foreach p [concat [n2_inputs $inst] [n2_outputs $inst]] {
    if {[$p net] ne "NULL"} { sta::disconnect_pin_cmd $p }
  }
  sta::delete_instance_cmd $inst
}

# --- timing ---------------------------------------------------------------------------------------

proc n2_worst_ends {paths} {
  return [find_timing_paths -path_delay max -group_count $paths -endpoint_count 1 \
            -unique_paths_to_endpoint -slack_max 0.0]
}

proc n2_wns {} { return [sta::worst_slack -max] }
proc n2_tns {} { return [sta::total_negative_slack -max] }

# True when (w, t) is better than (w0, t0): WNS up with TNS held, or TNS up with WNS held.
# OpenSTA sums TNS in single precision in an order that follows memory addresses: a TNS change
# below 10 ppm is noise (two processes disagree on it), neither a gain nor a loss.
proc n2_better {w t w0 t0} {
  set e 1e-6
  set et [expr {max($e, abs($t0) * 1e-5)}]
  return [expr {($w > $w0 + $e && $t >= $t0 - $et) || ($w >= $w0 - $e && $t > $t0 + $et)}]
}

proc n2_pin_slack {pin} {
  set v [lindex [$pin vertices] 0]
  if {$v eq ""} { return 1e30 }
  return [expr {min([lindex [$v slacks rise] 1], [lindex [$v slacks fall] 1])}]
}

proc n2_inst_slack {inst} {
  set worst 1e30
  foreach p [n2_outputs $inst] { set worst [expr {min($worst, [n2_pin_slack $p])}] }
  return $worst
}

# Driver pins on the worst paths, worst path first, each once; top-level ports excluded.
proc n2_path_drivers {paths} {
  set seen [dict create]
  set out {}
  foreach pe [n2_worst_ends $paths] {
    foreach pin [[$pe path] pins] {
      if {[$pin is_driver] && ![$pin is_top_level_port] && ![dict exists $seen $pin]} {
        dict set seen $pin 1
        lappend out $pin
      }
    }
  }
  return $out
}

# --- sizing, from the Liberty's families -----------------------------------------------------------

# Move an instance `dir` steps along its cell's list in a table of the Liberty's (n2_family:
# sizes, weakest first; n2_vt: threshold voltages, least leaky first); 1 on change.
proc n2_step {inst dir table} {
  upvar #0 $table lists
  set cell [n2_cell $inst]
  if {![info exists lists($cell)]} { return 0 }
  set list $lists($cell)
  set j [expr {[lsearch -exact $list $cell] + $dir}]
  if {$j < 0 || $j >= [llength $list]} { return 0 }
  sta::replace_cell_cmd $inst [n2_lib_cell [lindex $list $j]]
  return 1
}

# 1 stronger, -1 weaker, along the cell's size family.
proc n2_resize {inst dir} { return [n2_step $inst $dir n2_family] }

proc n2_eco_noop {} { return 0 }

# Physical ECOs change no netlist: their knobs act in place and route (engine/tools/pnr.py).
proc n2_eco_replace {seed density} { return 0 }
proc n2_eco_reroute {effort layers} { return 0 }

# Step each driver's cell up (`step inst 1`: a stronger size, a faster threshold voltage), at
# most `max_cells` of them, each step kept only when incremental timing improved: a stronger
# driver speeds its stage but loads the stage before it.
proc n2_step_drivers {pins max_cells step} {
  set n 0
  set wns [n2_wns]
  set tns [n2_tns]
  foreach pin $pins {
    if {$n >= $max_cells} { break }
    set inst [$pin instance]
    set was [n2_cell $inst]
    if {![$step $inst 1]} { continue }
    set w [n2_wns]
    set t [n2_tns]
    if {[n2_better $w $t $wns $tns]} {
      set wns $w
      set tns $t
      incr n
    } else {
      sta::replace_cell_cmd $inst [n2_lib_cell $was]
    }
  }
  return $n
}

proc n2_eco_resize_critical {paths max_cells} {
  return [n2_step_drivers [n2_path_drivers $paths] $max_cells n2_resize]
}

# Instances as {slack name inst}, ordered by their worst output slack (vertex slacks are in
# seconds), names breaking ties so the order never depends on memory layout.
proc n2_by_slack {order} {
  set cands {}
  foreach inst [get_cells *] {
    set s [n2_inst_slack $inst]
    if {$s < 1e29} { lappend cands [list $s [get_full_name $inst] $inst] }
  }
  return [lsort -real $order -index 0 [lsort -index 1 $cands]]
}

# The largest finite output slack of any cell, in ps: the span a slack margin is drawn from.
proc n2_slack_max {} {
  set c [lindex [n2_by_slack -decreasing] 0]
  return [expr {$c eq "" ? 0.0 : max(0.0, [lindex $c 0] * 1e12)}]
}

proc n2_eco_downsize_noncritical {margin_ps max_cells} {
  set n 0
  foreach c [n2_by_slack -decreasing] {
    if {$n >= $max_cells || [lindex $c 0] <= $margin_ps * 1e-12} { break }
    incr n [n2_resize [lindex $c 2] -1]
  }
  return $n
}

proc n2_eco_upsize_all {margin_ps} {
  set n 0
  foreach c [n2_by_slack -increasing] {
    if {[lindex $c 0] >= $margin_ps * 1e-12} { break }
    incr n [n2_resize [lindex $c 2] 1]
  }
  return $n
}

# --- buffering and cloning ------------------------------------------------------------------------

# Driver pins on the worst paths whose nets reach at least `min_fanout` movable loads, each net
# once, as {driver net on_path_loads off_path_loads}.
proc n2_fanout_candidates {paths min_fanout} {
  set out {}
  set done [dict create]
  foreach pe [n2_worst_ends $paths] {
    set pins [[$pe path] pins]
    set onpath [dict create]
    foreach p $pins { dict set onpath $p 1 }
    foreach p $pins {
      if {![$p is_driver] || [$p is_top_level_port]} { continue }
      set net [$p net]
      if {$net eq "NULL" || [dict exists $done $net]} { continue }
      dict set done $net 1
      set loads [n2_loads $net]
      if {[llength $loads] < $min_fanout} { continue }
      set on {}
      set off {}
      foreach l $loads { if {[dict exists $onpath $l]} { lappend on $l } else { lappend off $l } }
      lappend out [list $p $net $on $off]
    }
  }
  return $out
}

# Put `loads` behind new buffering on `net`: one buffer of `cell`, an inverter pair of `cell`
# (when `pair`), or one buffer per group of at most `fanout` loads.  Returns what it made.
proc n2_buffer {net loads cell pair fanout tag} {
  global n2_io
  lassign $n2_io($cell) ins out
  set made {}
  set groups {}
  for {set i 0} {$i < [llength $loads]} {incr i $fanout} { lappend groups [lrange $loads $i [expr {$i + $fanout - 1}]] }
  set k 0
  foreach g $groups {
    set src $net
    set stages [expr {$pair ? 2 : 1}]
    for {set s 0} {$s < $stages} {incr s} {
      set b [n2_make_instance "${tag}_${k}_$s" $cell]
      set bn [n2_make_net "${tag}_${k}_${s}_net"]
      n2_connect $b [lindex $ins 0] $src
      n2_connect $b $out $bn
      lappend made $b $bn
      set src $bn
    }
    foreach l $g { n2_move $l $src }
    incr k
  }
  foreach {b bn} $made { n2_wire $bn }
  return $made
}

# Undo n2_buffer: loads back onto `net`, the new instances and nets gone.
proc n2_unbuffer {net loads made} {
  foreach l $loads { n2_move $l $net }
  foreach {b bn} $made { n2_remove $b }
  foreach {b bn} $made { sta::delete_net_cmd $bn }
}

# Timing-driven buffering: for each high-fanout net on the worst paths, try every buffer size,
# inverter pairs, and a small tree, on the off-path loads; keep the best option if it improves
# WNS/TNS, else leave the net as it was.
proc n2_eco_buffer_fanout {paths min_fanout max_nets {tree_fanout 8}} {
  global n2_tag n2_buffers n2_inverters
  set n 0
  set wns [n2_wns]
  set tns [n2_tns]
  set options {}
  foreach b $n2_buffers { lappend options [list $b 0 1000000] [list $b 0 $tree_fanout] }
  foreach i [lrange $n2_inverters end-1 end] { lappend options [list $i 1 1000000] }
  set k 0
  foreach c [n2_fanout_candidates $paths $min_fanout] {
    if {$n >= $max_nets} { break }
    lassign $c drv net on off
    if {[llength $off] < 2} { continue }
    set best {}
    set bw $wns
    set bt $tns
    foreach o $options {
      lassign $o cell pair fan
      if {$fan < 1000000 && [llength $off] <= $fan} { continue }
      set made [n2_buffer $net $off $cell $pair $fan "n2b_${n2_tag}_$k"]
      set w [n2_wns]
      set t [n2_tns]
      n2_unbuffer $net $off $made
      if {[n2_better $w $t $bw $bt]} { set best $o; set bw $w; set bt $t }
    }
    if {$best ne ""} {
      lassign $best cell pair fan
      n2_buffer $net $off $cell $pair $fan "n2b_${n2_tag}_$k"
      set wns [n2_wns]
      set tns [n2_tns]
      incr n
    }
    incr k
  }
  return $n
}

# Duplicate the driver of a high-fanout critical net: the copy shares its inputs and takes part
# of the loads.  Tried two ways, kept if better: the copy drives only the on-path loads (the
# critical path sees a light net), or the copy takes the off-path loads (no extra stage for
# them, unlike buffering).
proc n2_eco_clone_driver {paths min_fanout max_clones} {
  global n2_tag
  set n 0
  set wns [n2_wns]
  set tns [n2_tns]
  set k 0
  foreach c [n2_fanout_candidates $paths $min_fanout] {
    if {$n >= $max_clones} { break }
    lassign $c drv net on off
    set inst [$drv instance]
    if {[llength [n2_outputs $inst]] != 1} { continue }
    set best ""
    set bw $wns
    set bt $tns
    foreach way {on off} {
      set move [expr {$way eq "on" ? $on : $off}]
      if {[llength $move] < 1 || ([llength $on] + [llength $off]) - [llength $move] < 1} { continue }
      set made [n2_clone $inst $drv $move "n2c_${n2_tag}_$k"]
      set w [n2_wns]
      set t [n2_tns]
      n2_unbuffer $net $move $made
      if {[n2_better $w $t $bw $bt]} { set best $way; set bw $w; set bt $t }
    }
    if {$best ne ""} {
      n2_clone $inst $drv [expr {$best eq "on" ? $on : $off}] "n2c_${n2_tag}_$k"
      set wns [n2_wns]
      set tns [n2_tns]
      incr n
    }
    incr k
  }
  return $n
}

proc n2_clone {inst drv loads tag} {
  set clone [n2_make_instance $tag [n2_cell $inst]]
  foreach ip [n2_inputs $inst] {
    if {[$ip net] ne "NULL"} { sta::connect_pin_cmd $clone [$ip port] [$ip net] }
  }
  set cn [n2_make_net "${tag}_net"]
  sta::connect_pin_cmd $clone [$drv port] $cn
  foreach l $loads { n2_move $l $cn }
  n2_wire $cn
  return [list $clone $cn]
}

# --- pin swapping, from the Liberty's commutative groups --------------------------------------------

proc n2_swap {inst pa pb} {
  set na [$pa net]
  set nb [$pb net]
  set porta [$pa port]
  set portb [$pb port]
  sta::disconnect_pin_cmd $pa
  sta::disconnect_pin_cmd $pb
  sta::connect_pin_cmd $inst $porta $nb
  sta::connect_pin_cmd $inst $portb $na
}

# The late (on-path) input moves to each other pin of its commutative group in turn; a swap is
# kept only when WNS/TNS improve.
proc n2_eco_pin_swap {paths max_swaps} {
  global n2_symmetric
  set n 0
  set wns [n2_wns]
  set tns [n2_tns]
  set seen [dict create]
  foreach pe [n2_worst_ends $paths] {
    foreach p [[$pe path] pins] {
      if {$n >= $max_swaps} { return $n }
      if {![$p is_load] || [$p is_top_level_port]} { continue }
      set inst [$p instance]
      if {[dict exists $seen $inst]} { continue }
      dict set seen $inst 1
      set cell [n2_cell $inst]
      if {![info exists n2_symmetric($cell)]} { continue }
      set late [$p port_name]
      set group ""
      foreach g $n2_symmetric($cell) { if {[lsearch -exact $g $late] >= 0} { set group $g } }
      if {$group eq ""} { continue }
      set kept 0
      foreach other $group {
        if {$other eq $late} { continue }
        set pa [$inst find_pin $late]
        set pb [$inst find_pin $other]
        if {$pb eq "NULL" || [$pb net] eq "NULL" || [$pa net] eq "NULL"} { continue }
        n2_swap $inst $pa $pb
        set w [n2_wns]
        set t [n2_tns]
        if {[n2_better $w $t $wns $tns]} {
          set wns $w
          set tns $t
          set late $other
          set kept 1
        } else {
          n2_swap $inst [$inst find_pin $late] [$inst find_pin $other]
        }
      }
      incr n $kept
    }
  }
  return $n
}

# --- re-synthesis: the cone the driver (engine/tools/resynth.py) rebuilds ---------------------------

# Combinational cells within `depth` levels of fan-in before the worst `paths` endpoints.
proc n2_fanin_cone {paths depth} {
  global n2_sequential
  set cone [dict create]
  set frontier {}
  foreach pe [n2_worst_ends $paths] { lappend frontier [[$pe path] pin] }
  for {set level 0} {$level < $depth && [llength $frontier]} {incr level} {
    set next {}
    foreach pin $frontier {
      set net [$pin net]
      if {$net eq "NULL"} { continue }
      foreach d [n2_net_pins $net] {
        if {![$d is_driver] || [$d is_top_level_port]} { continue }
        set inst [$d instance]
        if {[info exists n2_sequential([n2_cell $inst])] || [dict exists $cone $inst]} { continue }
        dict set cone $inst 1
        set next [concat $next [n2_inputs $inst]]
      }
    }
    set frontier $next
  }
  return [dict keys $cone]
}

# For the driver only, which matches the names against the netlist it parsed.
proc n2_write_cone {paths depth file} {
  set f [open $file w]
  foreach inst [n2_fanin_cone $paths $depth] { puts $f [get_full_name $inst] }
  close $f
}

# How many cells the driver's new cone holds (0: the parent went on unchanged).
proc n2_eco_resynth_cone {args} {
  set f [open resynth.count r]
  set n [string trim [read $f]]
  close $f
  return $n
}

# --- integrity and measurement -------------------------------------------------------------------

# Structural faults an ECO must not leave: nets with loads but no driver (loads moved there become
# unconstrained and timing "improves" for nothing), nets with two drivers, and input pins of any
# instance connected to no net (invisible to check_setup).  Prints up to ten of each.
proc n2_integrity {} {
  set undriven {}
  set multi {}
  foreach net [get_nets *] {
    set d 0
    set l 0
    foreach p [n2_net_pins $net] {
      if {[$p is_driver]} { incr d }
      if {[$p is_load]} { incr l }
    }
    if {$l > 0 && $d == 0} { lappend undriven [get_full_name $net] }
    if {$d > 1} { lappend multi [get_full_name $net] }
  }
  set floating {}
  foreach inst [get_cells *] {
    foreach p [n2_inputs $inst] {
      if {[$p net] eq "NULL"} { lappend floating [get_full_name $p] }
    }
  }
  n2_metric undriven_nets [llength $undriven]
  n2_metric multi_driven_nets [llength $multi]
  n2_metric floating_inputs [llength $floating]
  foreach {what list} [list N2UNDRIVEN $undriven N2MULTIDRIVEN $multi N2FLOATING $floating] {
    if {[llength $list]} { puts "$what [lrange $list 0 9]" }
  }
}

proc n2_unconstrained_endpoints {} {
  sta::redirect_string_begin
  check_setup -unconstrained_endpoints
  set text [sta::redirect_string_end]
  if {[regexp {There (?:are|is) ([0-9]+) unconstrained endpoint} $text -> n]} { return $n }
  return 0
}

proc n2_failing_endpoints {} {
  return [llength [find_timing_paths -path_delay max -group_count 1000000 -endpoint_count 1 \
                     -unique_paths_to_endpoint -slack_max 0.0]]
}

# Where a trial's time went (ms since the script started, per phase: load, eco, timing, write):
# read by benchmarks/, not a metric.
proc n2_phase {name} {
  global n2_t0 n2_tlast
  set now [clock milliseconds]
  if {![info exists n2_tlast]} { set n2_tlast $n2_t0 }
  n2_metric phase_${name}_ms [expr {$now - $n2_tlast}]
  set n2_tlast $now
}

# Metrics go to their own file (n2m.txt), so a tool that floods stdout cannot hide or fake them.
proc n2_metric {key value} {
  global n2_mfile
  if {![info exists n2_mfile]} { set n2_mfile [open n2m.txt w] }
  puts $n2_mfile "N2M $key $value"
  flush $n2_mfile
}

# An SDC read in a safe interpreter that holds only SDC commands (guarded and locked domains):
# no exec, no open, no source.  OpenSTA's own SDC procs are Tcl too, and some evaluate their
# arguments (create_generated_clock -edges goes through an unbraced expr), so nothing the SDC
# computes reaches them as script: each argument crosses through n2_sdc_call, which lets pass
# only numbers, objects this reader handed out, and names from an alphabet that no Tcl
# evaluation can turn into a command.  A refusal is an error even inside the SDC's own
# `catch`; any error prints "Error:", which fails the trial as tool_error.
proc n2_read_sdc_safe {file commands} {
  global n2_sdc_objects n2_sdc_refused
  array unset n2_sdc_objects
  set n2_sdc_refused {}
  set f [open $file r]
  set text [read $f]
  close $f
  set i [interp create -safe]
  foreach c $commands { interp alias $i $c {} n2_sdc_call $c }
  interp limit $i commands -value 10000000
  set rc [catch {$i eval $text} msg]
  interp delete $i
  array unset n2_sdc_objects
  foreach why [lrange $n2_sdc_refused 0 4] { puts "Error: SDC [file tail $file]: $why" }
  if {$rc && ![llength $n2_sdc_refused]} { puts "Error: SDC [file tail $file]: $msg" }
}

# Names and patterns: letters, digits and _ . * ? / : @ % + = ! ~ ^ , | -, a backslash only
# before / [ ], and brackets only around a bus index ([3], [*], [7:0]).  No space, $, {, ", ;
# or # : an eval or expr of such a word can at most call a command named by digits, * ? and :,
# and sta has none (tests/test_locked.py checks both).
proc n2_sdc_name {s} {
  return [regexp {^(?:[-A-Za-z0-9_.*?/:@%+=!~^,|]|\\/|\\?\[[0-9*?:]*\\?\])+$} $s]
}

# "" when `value` may reach OpenSTA, else why not.
proc n2_sdc_check {value {depth 0}} {
  global n2_sdc_objects
  if {[string is double -strict $value]} { return "" }
  if {[catch {llength $value} n]} { return "not a well-formed list" }
  if {$n == 1 && [lindex $value 0] eq $value} {
    if {[regexp {^_[0-9a-fA-F]+_p_} $value]} {
      if {[info exists n2_sdc_objects($value)]} { return "" }
      return "an object this SDC reader did not hand out"
    }
    if {[n2_sdc_name $value]} { return "" }
    return "not a number, an object or a plain name"
  }
  if {$depth >= 3} { return "lists nested too deeply" }
  foreach x $value {
    if {[set why [n2_sdc_check $x [expr {$depth + 1}]]] ne ""} { return $why }
  }
  return ""
}

# A checked value in canonical list form: elements joined by single spaces, so no newline or
# tab that separated them survives into a script OpenSTA might build from it.
proc n2_sdc_canon {value} {
  if {[string is double -strict $value] || [llength $value] == 1 && [lindex $value 0] eq $value} { return $value }
  return [lmap x $value { n2_sdc_canon $x }]
}

proc n2_sdc_call {cmd args} {
  global n2_sdc_objects n2_sdc_refused
  set k 0
  set checked {}
  foreach a $args {
    incr k
    if {[set why [n2_sdc_check $a]] ne ""} {
      set shown [string range $a 0 59]
      set m "$cmd: argument $k ([list $shown]) refused: $why"
      lappend n2_sdc_refused $m
      return -code error $m
    }
    lappend checked [n2_sdc_canon $a]
  }
  set r [n2_sdc_translate $cmd $checked]
  if {![catch {llength $r}]} {
    foreach x $r { if {[regexp {^_[0-9a-fA-F]+_p_[A-Za-z]+$} $x]} { set n2_sdc_objects($x) 1 } }
  }
  return $r
}

# What OpenSTA 2.0.17 lacks, said in its own terms: `all_inputs -no_clocks` (every
# OpenROAD-flow-scripts SDC) is all_inputs without the ports that are clock sources.
proc n2_sdc_translate {cmd arglist} {
  if {$cmd eq "all_inputs" && [lsearch -exact $arglist -no_clocks] >= 0} {
    return [n2_inputs_without_clocks [lsearch -all -inline -not -exact $arglist -no_clocks]]
  }
  return [$cmd {*}$arglist]
}

proc n2_inputs_without_clocks {rest} {
  puts "Note: SDC: all_inputs -no_clocks read as all_inputs without the clock source ports (OpenSTA 2.0.17 lacks -no_clocks)"
  set clocked [dict create]
  foreach clk [all_clocks] {
    foreach pin [$clk sources] {
      if {[$pin is_top_level_port]} { dict set clocked [get_full_name $pin] 1 }
    }
  }
  set all [expr {[info commands n2_sta_all_inputs] ne "" ? [n2_sta_all_inputs {*}$rest] : [all_inputs {*}$rest]}]
  set out {}
  foreach port $all {
    if {![dict exists $clocked [get_full_name $port]]} { lappend out $port }
  }
  return $out
}

# Sandbox reads the SDC as raw Tcl: all_inputs learns -no_clocks the same way.
proc n2_read_sdc_raw {file} {
  if {[info commands n2_sta_all_inputs] eq ""} {
    rename all_inputs n2_sta_all_inputs
    proc all_inputs {args} {
      if {[lsearch -exact $args -no_clocks] < 0} { return [n2_sta_all_inputs {*}$args] }
      return [n2_inputs_without_clocks [lsearch -all -inline -not -exact $args -no_clocks]]
    }
  }
  read_sdc $file
}

# One user time unit (the first Liberty's time_unit) in ps: 1000 for ns, 1 for ASAP7's ps.
# Vertex slacks are SI seconds whatever the Liberty says; sta::worst_slack speaks user units.
proc n2_unit_ps {} { return [expr {10.0 ** round(log10([sta::time_ui_sta 1.0] * 1e12))}] }  ;# sta's scale is single precision

# Signed worst setup slack (positive when timing is met, unlike report_wns), and per corner
# (n2_corners: the study's corner names, when it has several) WNS, TNS and hold slack.
proc n2_corner_metrics {} {
  global n2_corners
  set u [n2_unit_ps]
  set ws [sta::worst_slack -max]
  if {abs($ws) < 1e20} { n2_metric ws_ps [expr {$ws * $u}] }
  if {![info exists n2_corners]} { return }
  foreach c $n2_corners {
    set w [sta::worst_slack -corner $c -max]
    if {abs($w) < 1e20} {
      n2_metric ws_ps@$c [expr {$w * $u}]
      n2_metric wns_ps@$c [expr {min($w, 0.0) * $u}]
    }
    set t [n2_tns_exact $c]
    n2_metric tns_ps@$c [expr {$t eq "" ? [sta::total_negative_slack -corner $c -max] * $u : $t}]
    set h [sta::worst_slack -corner $c -min]
    if {abs($h) < 1e6} { n2_metric hold_worst_ps@$c [expr {$h * $u}] }
  }
}

# Wires of nets an ECO makes, for a placed and routed design timed with its SPEF
# (n2_wire_by_fanout, from the SPEF's own nets: fanout -> median wire capacitance in the
# Liberty's unit; n2_base_net: the nets the SPEF's netlist had, left as extracted).
proc n2_wire {net} {
  global n2_wire_by_fanout n2_estimated
  if {![info exists n2_wire_by_fanout] || $net eq "NULL"} { return }
  set fanout 0
  foreach p [n2_net_pins $net] { if {[$p is_load]} { incr fanout } }
  set table [dict keys $n2_wire_by_fanout]
  if {[dict exists $n2_wire_by_fanout $fanout]} {
    set c [dict get $n2_wire_by_fanout $fanout]
  } else {  ;# beyond the table: the largest fanout's capacitance per load
    set top [tcl::mathfunc::max {*}$table]
    set c [expr {[dict get $n2_wire_by_fanout $top] * max($fanout, 1) / double(max($top, 1))}]
  }
  set_load $c $net
  dict set n2_estimated [get_full_name $net] 1
}

# Every net neither the SPEF's netlist had nor an ECO here estimated: a parent's new nets, once
# the design is read; what an ECO made without n2_wire, at the end.
proc n2_estimate_wires {} {
  global n2_wire_by_fanout n2_base_net n2_estimated
  if {![info exists n2_wire_by_fanout]} { return }
  foreach net [get_nets *] {
    set name [get_full_name $net]
    if {![info exists n2_base_net($name)] && ![dict exists $n2_estimated $name]} { n2_wire $net }
  }
  n2_metric estimated_nets [dict size $n2_estimated]
}

# Total negative setup slack in ps, summed in double precision in a fixed order: OpenSTA sums
# single-precision slacks in an order that follows memory addresses, so its TNS moves in the
# last digits between two processes timing the same netlist.  With `corner`, that corner's
# (its path analysis point is the one whose worst slack is the corner's; "" when none is sure).
proc n2_tns_exact {{corner ""}} {
  set worst {}  ;# per endpoint vertex: max-slack per analysis point index, worst of rise/fall
  foreach pin [sta::endpoints] {
    foreach v [$pin vertices] {
      set w {}
      foreach rf {rise fall} {
        set i 0
        foreach s [$v slacks $rf] {
          if {$i % 2 == 1 && (![dict exists $w $i] || $s < [dict get $w $i])} { dict set w $i $s }
          incr i
        }
      }
      lappend worst $w
    }
  }
  if {$corner eq ""} {
    set neg {}
    foreach w $worst { set m [tcl::mathfunc::min {*}[dict values $w]]; if {$m < 0} { lappend neg $m } }
  } else {
    set target [expr {[sta::worst_slack -corner $corner -max] * [sta::time_ui_sta 1.0]}]
    set found {}
    foreach i [dict keys [lindex $worst 0]] {
      set m [tcl::mathfunc::min {*}[lmap w $worst { dict get $w $i }]]
      if {$m == $target || abs($m - $target) <= 1e-6 * abs($target)} { lappend found $i }
    }
    if {[llength $found] != 1} { return "" }
    set neg {}
    foreach w $worst { set m [dict get $w [lindex $found 0]]; if {$m < 0} { lappend neg $m } }
  }
  set sum 0.0
  foreach m [lsort -real $neg] { set sum [expr {$sum + $m}] }
  return [expr {$sum * 1e12}]
}

proc n2_report {file paths power} {
  sta::redirect_file_begin $file.timing.rpt
  report_checks -path_delay max -group_count $paths -endpoint_count 1 -unique_paths_to_endpoint \
    -fields {fanout cap} -digits 3
  sta::redirect_file_end
  sta::redirect_file_begin $file.wns.rpt
  report_wns -digits 3
  puts [format "tns %.3f" [expr {[n2_tns_exact] / [n2_unit_ps]}]]
  sta::redirect_file_end
  if {$power} {  ;# with several corners, at the first (the study's default corner)
    global n2_corners
    sta::redirect_file_begin $file.power.rpt
    if {[info exists n2_corners]} { report_power -corner [lindex $n2_corners 0] -digits 6 } else { report_power -digits 6 }
    sta::redirect_file_end
  }
}

# Electrical checks, in every mode: pins over their transition limit (the SDC's set_max_transition
# or the Liberty's; OpenSTA's own check) and driver pins whose net capacitance exceeds the
# Liberty's max_capacitance (n2_maxcap, in farads: 2.0.17 has no capacitance check of its own).
proc n2_electrical {file} {
  global n2_maxcap
  set corner [sta::cmd_corner]
  set slew [sta::pin_slew_limit_violations $corner max]
  set over {}
  foreach inst [get_cells *] {
    foreach p [n2_outputs $inst] {
      set key "[n2_cell $inst]/[lindex [split [get_full_name $p] /] end]"
      if {![info exists n2_maxcap($key)] || [$p net] eq "NULL"} { continue }
      set c [[$p net] capacitance rise $corner max]
      if {$c > $n2_maxcap($key)} {
        lappend over [list [format %.4f [expr {($c - $n2_maxcap($key)) * 1e12}]] [get_full_name $p] \
                        [format %.4f [expr {$c * 1e12}]] [format %.4f [expr {$n2_maxcap($key) * 1e12}]]]
      }
    }
  }
  n2_metric slew_violations [llength $slew]
  n2_metric cap_violations [llength $over]
  set f [open $file.electrical.rpt w]
  puts $f "max_transition violations: [llength $slew]"
  foreach p [lrange $slew 0 19] { puts $f "  [get_full_name $p]" }
  puts $f "max_capacitance violations: [llength $over] (pin, net pF, limit pF)"
  foreach o [lrange [lsort -decreasing -real -index 0 $over] 0 19] {
    puts $f "  [lindex $o 1] [lindex $o 2] [lindex $o 3]"
  }
  close $f
}

# Hold: the worst min-delay slack, the endpoints that violate it, and the worst min-delay paths.
proc n2_hold {file paths} {
  set w [sta::worst_slack -min]
  if {abs($w) < 1e6} { n2_metric hold_worst_ps [expr {$w * [n2_unit_ps]}] }  ;# else no constrained min path
  n2_metric hold_violations [llength [find_timing_paths -path_delay min -group_count 1000000 -endpoint_count 1 \
                                        -unique_paths_to_endpoint -slack_max -1e-6]]
  sta::redirect_file_begin $file.hold.rpt
  report_checks -path_delay min -group_count $paths -endpoint_count 1 -unique_paths_to_endpoint -digits 3
  sta::redirect_file_end
}

# --- threshold voltages ---------------------------------------------------------------------------

# Along the cell's threshold-voltage ladder (n2_vt, from the Liberty: the same cell and footprint
# in other libraries): 1 faster and leakier, -1 slower and less leaky.
proc n2_vt_step {inst dir} { return [n2_step $inst $dir n2_vt] }

# Drivers on the worst paths move to a faster threshold voltage, each kept only when WNS/TNS
# improve; then cells whose slack is above a margin move to a slower, less leaky one while
# WNS/TNS hold.  Same footprint and function: a topology-neutral change.
proc n2_eco_vt_swap {paths max_cells margin_ps} {
  set n [n2_step_drivers [expr {$paths > 0 ? [n2_path_drivers $paths] : {}}] $max_cells n2_vt_step]
  set wns [n2_wns]
  set tns [n2_tns]
  foreach c [n2_by_slack -decreasing] {
    if {$n >= $max_cells || [lindex $c 0] <= $margin_ps * 1e-12} { break }
    set inst [lindex $c 2]
    set was [n2_cell $inst]
    if {![n2_vt_step $inst -1]} { continue }
    if {[n2_wns] >= $wns - 1e-9 && [n2_tns] >= $tns - 1e-9} {
      incr n
    } else {
      sta::replace_cell_cmd $inst [n2_lib_cell $was]
    }
  }
  return $n
}

# --- electrical repair ----------------------------------------------------------------------------

# The pin that drives a net (an instance output or a top-level input port), or "".
proc n2_net_driver {net} {
  foreach p [n2_net_pins $net] { if {[$p is_driver]} { return $p } }
  return ""
}

# Driver pins whose net breaks an electrical limit, worst first, as {severity pin}: over its
# max_capacitance (the Liberty's, in farads), over max_fanout loads (0: no limit), or a pin of
# the net over its slew limit (the SDC's set_max_transition or the Liberty's).
proc n2_violators {max_fanout} {
  global n2_maxcap
  set corner [sta::cmd_corner]
  set worst [dict create]
  foreach p [sta::pin_slew_limit_violations $corner max] {
    set net [$p net]
    if {$net eq "NULL"} { continue }
    set d [expr {[$p is_driver] ? $p : [n2_net_driver $net]}]
    if {$d ne ""} { dict set worst $d [expr {max(1.0, [dict exists $worst $d] ? [dict get $worst $d] : 0)}] }
  }
  foreach inst [get_cells *] {
    foreach p [n2_outputs $inst] {
      set net [$p net]
      if {$net eq "NULL"} { continue }
      set key "[n2_cell $inst]/[lindex [split [get_full_name $p] /] end]"
      set over 0.0
      if {[info exists n2_maxcap($key)]} {
        set over [expr {[$net capacitance rise $corner max] / $n2_maxcap($key)}]
      }
      if {$max_fanout > 0} {
        set over [expr {max($over, [llength [n2_loads $net]] / double($max_fanout))}]
      }
      if {$over > 1.0} { dict set worst $p [expr {max($over, [dict exists $worst $p] ? [dict get $worst $p] : 0)}] }
    }
  }
  set out {}
  dict for {p sev} $worst { lappend out [list $sev [get_full_name $p] $p] }
  return [lsort -real -decreasing -index 0 [lsort -index 1 $out]]
}

# How many electrical violations the design has (slew pins + capacitance and fanout drivers).
proc n2_violation_count {max_fanout} {
  return [llength [n2_violators $max_fanout]]
}

# Every net over an electrical limit, worst first: upsize its driver along its family, else put
# its loads behind a tree of the strongest buffer, `tree_fanout` loads each.  A repair is kept
# when the design has fewer violations and WNS/TNS are no worse than `wns_loss_ps` (the limits
# first, as OpenROAD's repair_design does: a net of 1 pF is not a timing result).
proc n2_eco_repair_design {max_nets max_fanout tree_fanout wns_loss_ps} {
  global n2_tag n2_buffers
  set n 0
  set k 0
  set loss [expr {$wns_loss_ps / [n2_unit_ps]}]
  set count [n2_violation_count $max_fanout]
  set floor [expr {min([n2_wns], 0.0) - $loss}]  ;# no repair may take WNS below this (met stays met)
  foreach v [n2_violators $max_fanout] {
    if {$n >= $max_nets || $count == 0} { break }
    set drv [lindex $v 2]
    set net [$drv net]
    if {$net eq "NULL"} { continue }
    set kept 0
    if {![$drv is_top_level_port]} {  ;# a stronger driver first: no new cell
      set inst [$drv instance]
      set was [n2_cell $inst]
      while {[n2_resize $inst 1]} {
        set c [n2_violation_count $max_fanout]
        if {$c < $count && min([n2_wns], 0.0) >= $floor} { set kept 1; break }
      }
      if {$kept} {
        set count $c
      } else {
        sta::replace_cell_cmd $inst [n2_lib_cell $was]
      }
    }
    set loads [n2_loads $net]
    if {!$kept && [llength $loads] >= 2} {  ;# the weakest buffer that repairs it: less load on the driver
      set fan [expr {min($tree_fanout, max(1, [llength $loads] - 1))}]
      foreach buf $n2_buffers {
        set made [n2_buffer $net $loads $buf 0 $fan "n2e_${n2_tag}_$k"]
        incr k
        set c [n2_violation_count $max_fanout]
        if {$c < $count && min([n2_wns], 0.0) >= $floor} {
          set kept 1
          set count $c
          break
        }
        n2_unbuffer $net $loads $made
      }
    }
    incr n $kept
  }
  return $n
}
