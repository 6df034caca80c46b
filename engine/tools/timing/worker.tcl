# noodle2's warm OpenSTA worker: trial scripts one after another in one process, so the
# Liberty is read once per worker instead of once per trial.
#
# The engine writes one trial directory per line on stdin (data: it only reaches `cd`); the
# worker runs that directory's run.tcl, the same script a cold `sta` runs, with its output in
# the directory's stdout.log, and answers "n2-done <exit code>" on the reply pipe
# (N2_REPLY_FD).  In a trial, `exit` ends the trial, not the process, and a Liberty file already
# read for the same corner is not read again.  Between trials every global, proc, channel and
# child interpreter a trial made is removed and every global of the baseline is restored, so
# each trial starts from the Tcl state of a fresh process; the trial's own read_verilog,
# link_design, read_sdc and read_spef replace the design, its constraints and its parasitics.
# A trial whose Liberty read failed, or that asks for other corners, leaves the worker dirty:
# it answers, then exits.
# Before the first trial it says "n2-ready" on the reply pipe: a worker that exits before
# that could not start (an installation's fault, not a trial's), and the engine runs cold.

namespace eval n2w {
  variable code ""      ;# the trial's exit code, once it called exit
  variable dirty 0
  variable libs         ;# {corner path} -> 1: Liberty files read
  array set libs {}
  variable corners ""
  variable log ""       ;# the trial's stdout.log while a trial runs
  variable paused 0     ;# a redirect of the trial's own (a report file) holds the output
}

rename exit ::n2w::real_exit
proc exit {{code 0}} {
  if {$::n2w::code eq ""} { set ::n2w::code $code }
}

rename read_liberty ::n2w::real_read_liberty
proc read_liberty {args} {
  set corner ""
  if {[lindex $args 0] eq "-corner"} { set corner [lindex $args 1] }
  set path [file normalize [lindex $args end]]
  for {set i 0} {$i < 8 && [file exists $path] && [file type $path] eq "link"} {incr i} {  ;# a Ray node links the cached copy
    set path [file normalize [file join [file dirname $path] [file readlink $path]]]
  }
  set key [list $corner $path]
  if {[info exists ::n2w::libs($key)]} { return }
  if {[catch {::n2w::real_read_liberty {*}$args} err opts]} {
    set ::n2w::dirty 1
    return -options $opts $err
  }
  set ::n2w::libs($key) 1
}

rename define_corners ::n2w::real_define_corners
proc define_corners {args} {
  if {$::n2w::corners eq $args} { return }
  if {[array size ::n2w::libs] > 0} { set ::n2w::dirty 1 }
  set ::n2w::corners $args
  ::n2w::real_define_corners {*}$args
}

# A report written to a file or a string takes the output from the trial's log and gives it back.
foreach c {redirect_file_begin redirect_file_append_begin redirect_string_begin} {
  rename ::sta::$c ::n2w::real_$c
  proc ::sta::$c {args} "::n2w::pause; ::n2w::real_$c {*}\$args"
}
rename ::sta::redirect_file_end ::n2w::real_redirect_file_end
proc ::sta::redirect_file_end {} { ::n2w::real_redirect_file_end; ::n2w::resume }
rename ::sta::redirect_string_end ::n2w::real_redirect_string_end
proc ::sta::redirect_string_end {} { set s [::n2w::real_redirect_string_end]; ::n2w::resume; return $s }

proc ::n2w::pause {} {
  variable log; variable paused
  if {$log ne "" && !$paused} { ::n2w::real_redirect_file_end; set paused 1 }
}

proc ::n2w::resume {} {
  variable log; variable paused
  if {$log ne "" && $paused} { ::n2w::real_redirect_file_append_begin $log; set paused 0 }
}

proc ::n2w::baseline {} {
  variable base_vals
  foreach v [info globals] {
    if {![array exists ::$v] && [info exists ::$v]} { set base_vals($v) [set ::$v] }
  }
  variable base_globals [info globals]
  variable base_procs [info procs]
  variable base_chans [chan names]
}

proc ::n2w::reset {} {
  variable base_vals; variable base_globals; variable base_procs; variable base_chans
  foreach c [chan names] { if {$c ni $base_chans} { catch {close $c} } }
  foreach i [interp slaves] { catch {interp delete $i} }
  foreach p [info procs] { if {$p ni $base_procs} { rename $p {} } }
  foreach v [info globals] { if {$v ni $base_globals} { unset -nocomplain ::$v } }
  foreach {v x} [array get base_vals] {
    if {![info exists ::$v] || [array exists ::$v] || [set ::$v] ne $x} {
      unset -nocomplain ::$v
      set ::$v $x
    }
  }
}

proc ::n2w::serve {} {
  variable code; variable dirty; variable log; variable paused; variable reply
  while {[gets stdin dir] >= 0} {
    if {[catch {cd $dir} err]} {
      puts $reply "n2-error [string map {\n { }} $err]"
      continue
    }
    set log [file join [pwd] stdout.log]
    set paused 0
    ::n2w::real_redirect_file_begin $log
    catch {uplevel #0 {source run.tcl}}
    if {!$paused} { ::n2w::real_redirect_file_end }
    set log ""
    reset
    puts $reply "n2-done [expr {$code eq "" ? 0 : $code}]"
    set code ""
    if {$dirty} { break }
  }
  close $reply
}

set ::n2w::reply [open "/dev/fd/$::env(N2_REPLY_FD)" w]
fconfigure $::n2w::reply -buffering line
::n2w::baseline
puts $::n2w::reply "n2-ready"
::n2w::serve
::n2w::real_exit 0
