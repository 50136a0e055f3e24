//! A seccomp filter for the command: `ioctl(TIOCSTI)` and `ioctl(TIOCLINUX)` fail with
//! EPERM (doas CVE-2023-28339, sudo's `use_pty` rationale). Without it a command running as
//! another user on the caller's terminal could push keystrokes into it that the caller's
//! shell runs after the command ends. Blocking the two ioctls closes that without a pty
//! relay; nothing else is filtered. Installed in the child while it is still root (seccomp
//! needs CAP_SYS_ADMIN or no_new_privs), inherited across setresuid and execve, and by every
//! descendant.
//!
//! The program checks the architecture first: the native one and its 32-bit compat ABI
//! (i386 on x86_64, arm on aarch64; x32 numbers too) each have their own ioctl number.

use std::io;

const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541C;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
/// x32 system calls on x86_64 carry this bit.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("jitrun's TIOCSTI filter knows the ioctl numbers of x86_64 and aarch64 only; add this architecture's to system/seccomp.rs");

/// (arch, the syscall numbers of ioctl in it)
#[cfg(target_arch = "x86_64")]
const IOCTLS: &[(u32, &[u32])] = &[
    (
        AUDIT_ARCH_X86_64,
        &[16, X32_SYSCALL_BIT | 16, X32_SYSCALL_BIT | 514],
    ),
    (AUDIT_ARCH_I386, &[54]),
];
#[cfg(target_arch = "aarch64")]
const IOCTLS: &[(u32, &[u32])] = &[(AUDIT_ARCH_AARCH64, &[29]), (AUDIT_ARCH_ARM, &[54])];

// struct seccomp_data: nr at 0, arch at 4, instruction_pointer at 8, args[6] at 16.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// The low 32 bits of args[1] (little-endian): the kernel takes the ioctl request as an
/// unsigned int, so the high half must not matter.
const OFF_ARG1_LO: u32 = 24;

const LD_ABS_W: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Instructions with symbolic jump targets, resolved to BPF's relative offsets.
enum Insn {
    Load(u32),
    /// if A == k goto `then` else goto `otherwise` (absolute indices).
    JumpEq(u32, Target, Target),
    Ret(u32),
}

#[derive(Clone, Copy)]
enum Target {
    Next,
    At(usize),
    Allow,
    Deny,
}

/// The BPF program (pure; unit-tested).
pub fn program() -> Vec<libc::sock_filter> {
    let mut code: Vec<Insn> = Vec::new();
    // Filled in below, once their positions are known.
    let mut arch_blocks: Vec<(usize, usize)> = Vec::new(); // (jump insn index, block start)
    code.push(Insn::Load(OFF_ARCH));
    let dispatch_start = code.len();
    for _ in IOCTLS {
        code.push(Insn::Ret(0)); // placeholder for the arch dispatch
    }
    code.push(Insn::Ret(libc::SECCOMP_RET_ALLOW)); // unknown arch: not ours to judge
    for (i, (_, numbers)) in IOCTLS.iter().enumerate() {
        arch_blocks.push((dispatch_start + i, code.len()));
        code.push(Insn::Load(OFF_NR));
        for (j, nr) in numbers.iter().enumerate() {
            let otherwise = if j + 1 == numbers.len() {
                Target::Allow
            } else {
                Target::Next
            };
            code.push(Insn::JumpEq(*nr, Target::At(usize::MAX), otherwise));
        }
    }
    let arg_check = code.len();
    code.push(Insn::Load(OFF_ARG1_LO));
    code.push(Insn::JumpEq(TIOCSTI, Target::Deny, Target::Next));
    code.push(Insn::JumpEq(TIOCLINUX, Target::Deny, Target::Allow));
    let allow = code.len();
    code.push(Insn::Ret(libc::SECCOMP_RET_ALLOW));
    let deny = code.len();
    code.push(Insn::Ret(libc::SECCOMP_RET_ERRNO | libc::EPERM as u32));

    for ((jump_at, block), (arch, _)) in arch_blocks.iter().zip(IOCTLS) {
        code[*jump_at] = Insn::JumpEq(*arch, Target::At(*block), Target::Next);
    }
    for insn in code.iter_mut() {
        if let Insn::JumpEq(_, t @ Target::At(usize::MAX), _) = insn {
            *t = Target::At(arg_check);
        }
    }

    let resolve = |from: usize, t: Target| -> u8 {
        let to = match t {
            Target::Next => from + 1,
            Target::At(i) => i,
            Target::Allow => allow,
            Target::Deny => deny,
        };
        let off = to - from - 1;
        u8::try_from(off).expect("seccomp program: jump too far")
    };
    code.iter()
        .enumerate()
        .map(|(i, insn)| match *insn {
            Insn::Load(off) => libc::sock_filter {
                code: LD_ABS_W,
                jt: 0,
                jf: 0,
                k: off,
            },
            Insn::JumpEq(k, then, otherwise) => libc::sock_filter {
                code: JEQ_K,
                jt: resolve(i, then),
                jf: resolve(i, otherwise),
                k,
            },
            Insn::Ret(k) => libc::sock_filter {
                code: RET_K,
                jt: 0,
                jf: 0,
                k,
            },
        })
        .collect()
}

/// Install the filter on this thread (the child is single-threaded).
pub fn deny_terminal_injection() -> io::Result<()> {
    let filter = program();
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points to `filter`, which outlives the call; the kernel copies the
    // program. PR_SET_SECCOMP with SECCOMP_MODE_FILTER takes a pointer to a sock_fprog.
    super::check(unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the subset of classic BPF the program uses.
    fn run(prog: &[libc::sock_filter], arch: u32, nr: u32, arg1: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        data[24..32].copy_from_slice(&arg1.to_le_bytes());
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            match i.code {
                LD_ABS_W => {
                    let k = i.k as usize;
                    a = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                    pc += 1;
                }
                JEQ_K => pc += 1 + if a == i.k { i.jt } else { i.jf } as usize,
                RET_K => return i.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    const DENY: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

    #[test]
    fn blocks_only_the_two_ioctls_on_every_abi() {
        let p = program();
        for (arch, numbers) in IOCTLS {
            for nr in *numbers {
                assert_eq!(run(&p, *arch, *nr, TIOCSTI as u64), DENY);
                assert_eq!(run(&p, *arch, *nr, TIOCLINUX as u64), DENY);
                // high bits of the request do not matter to the kernel, nor to the filter
                assert_eq!(
                    run(&p, *arch, *nr, 0xffff_ffff_0000_0000 | TIOCSTI as u64),
                    DENY
                );
                // other ioctls pass: TCGETS, TIOCGWINSZ, TIOCSCTTY
                for ok in [0x5401u64, 0x5413, 0x540E] {
                    assert_eq!(run(&p, *arch, *nr, ok), ALLOW);
                }
            }
            // another syscall with the same argument passes (e.g. write(fd, buf=0x5412))
            assert_eq!(run(&p, *arch, 1, TIOCSTI as u64), ALLOW);
        }
        assert_eq!(run(&p, 0x1234, 16, TIOCSTI as u64), ALLOW);
    }
}
