//! The seccomp filter every task runs under: the calls that could undo or see past the sandbox (mounts, new
//! namespaces, tracing other processes, the kernel keyring, BPF, loading modules, rebooting) fail with `EPERM`;
//! `clone3`, whose flags a filter cannot read, fails with `ENOSYS` so C libraries fall back to `clone`, whose flags
//! it can. Anything called through another architecture's entry point (32-bit `int 0x80`) kills the process.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

/// Calls refused outright.
const REFUSED: &[i64] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_syslog,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_uselib,
    libc::SYS_lookup_dcookie,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_vhangup,
];

/// `clone` flags that make new namespaces.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
    0x80, // CLONE_NEWTIME
];

/// `ioctl` requests that push input into the controlling terminal (`TIOCSTI`) or act on the console (`TIOCLINUX`).
const TERMINAL_INJECTION: &[u64] = &[0x5412, 0x541C];

/// Why the filter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the task seccomp filter: {0}")]
pub struct FilterError(String);

/// The filters, compiled to classic BPF in the byte layout `bwrap --add-seccomp-fd` reads (native-endian
/// `struct sock_filter` records): the refusals, then `clone3` → `ENOSYS`.
pub fn programs() -> Result<Vec<Vec<u8>>, FilterError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| FilterError(e.to_string()))?;
    let mut refused: BTreeMap<i64, Vec<SeccompRule>> = REFUSED.iter().map(|call| (*call, Vec::new())).collect();
    refused.insert(libc::SYS_clone, flag_rules(0, NAMESPACE_FLAGS)?);
    refused.insert(libc::SYS_ioctl, equal_rules(1, TERMINAL_INJECTION)?);
    let refusals = SeccompFilter::new(refused, SeccompAction::Allow, errno(libc::EPERM), arch)
        .map_err(|e| FilterError(e.to_string()))?;
    let no_clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        errno(libc::ENOSYS),
        arch,
    )
    .map_err(|e| FilterError(e.to_string()))?;
    [refusals, no_clone3]
        .into_iter()
        .map(|filter| {
            let program: BpfProgram =
                filter.try_into().map_err(|e: seccompiler::BackendError| FilterError(e.to_string()))?;
            Ok(encode(&program))
        })
        .collect()
}

fn errno(code: i32) -> SeccompAction {
    SeccompAction::Errno(u32::try_from(code).unwrap_or(1))
}

/// One rule per flag: matches when argument `arg` has that flag set.
fn flag_rules(arg: u8, flags: &[u64]) -> Result<Vec<SeccompRule>, FilterError> {
    flags
        .iter()
        .map(|flag| rule(SeccompCondition::new(arg, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(*flag), *flag)))
        .collect()
}

/// One rule per value: matches when argument `arg` (as the kernel's 32-bit request number) equals it.
fn equal_rules(arg: u8, values: &[u64]) -> Result<Vec<SeccompRule>, FilterError> {
    values
        .iter()
        .map(|value| rule(SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, *value)))
        .collect()
}

fn rule(condition: Result<SeccompCondition, seccompiler::BackendError>) -> Result<SeccompRule, FilterError> {
    let condition = condition.map_err(|e| FilterError(e.to_string()))?;
    SeccompRule::new(vec![condition]).map_err(|e| FilterError(e.to_string()))
}

fn encode(program: &BpfProgram) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for instruction in program {
        bytes.extend_from_slice(&instruction.code.to_ne_bytes());
        bytes.push(instruction.jt);
        bytes.push(instruction.jf);
        bytes.extend_from_slice(&instruction.k.to_ne_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_filters_compile_to_whole_instructions() {
        let programs = programs().expect("filters");
        assert_eq!(programs.len(), 2);
        assert!(programs.iter().all(|p| !p.is_empty() && p.len() % 8 == 0));
    }
}
