/*
 * Ring-0 part of the test guest: PVH entry, long mode, descriptor tables,
 * interrupt stubs and the AP trampoline.
 *
 * Everything the CPU reads from memory (page tables, GDT, TSS, IDT) is
 * assembled here as constants, because guest ring-0 code may be emulated
 * at ~1 MIPS (architecture.md "The test guest"): the boot path is a
 * straight line of about 25 instructions before `iretq` into ring 3.
 *
 * Addresses of things in .boot are computed as
 *   BOOT_PHYS + (label - boot_base)
 * which the assembler resolves itself; the linker script asserts that
 * .boot starts at BOOT_PHYS. That lets the IDT and the TSS descriptor,
 * whose address fields are split into pieces, be plain constants.
 */

#define BOOT_PHYS       0x100000
#define ADDR(label)     (BOOT_PHYS + ((label) - boot_base))

#define SEL_KCODE       0x08
#define SEL_KDATA       0x10
#define SEL_UDATA       0x18
#define SEL_UCODE       0x20
#define SEL_TSS         0x28

#define CR0_VALUE       0x80010033      /* PG | WP | NE | ET | MP | PE */
#define CR4_VALUE       0x00000620      /* OSXMMEXCPT | OSFXSR | PAE */
#define MSR_EFER        0xc0000080
#define EFER_LME        0x100
#define LAPIC_BASE      0xfee00000
#define USER_RFLAGS     0x3202          /* IOPL=3 | IF | reserved bit 1 */

/* Vectors; keep in sync with guest.h. */
#define VEC_TIMER       0x40
#define VEC_SPURIOUS    0xff

        .section .boot, "awx", @progbits
        .globl boot_base
boot_base:

/* ---------------------------------------------------------------------
 * PVH entry (Xen PVH boot ABI): 32-bit protected mode, paging off, flat
 * segments, %ebx = physical address of struct hvm_start_info.
 * ------------------------------------------------------------------- */
        .code32
        .globl pvh_entry
pvh_entry:
        mov     %ebx, %edi
        mov     $ADDR(pml4), %eax
        mov     %eax, %cr3
        mov     $CR4_VALUE, %eax
        mov     %eax, %cr4
        mov     $MSR_EFER, %ecx
        xor     %edx, %edx
        mov     $EFER_LME, %eax
        wrmsr
        lgdt    ADDR(gdt_ptr)
        mov     $CR0_VALUE, %eax
        mov     %eax, %cr0
        ljmp    $SEL_KCODE, $ADDR(long_entry)

        .code64
long_entry:
        /*
         * Data segment registers keep the loader's cached flat descriptors;
         * 64-bit mode ignores their bases and iretq replaces SS.
         */
        mov     %edi, %edi
        mov     $kstack_top, %esp
        mov     $SEL_TSS, %eax
        ltr     %ax
        lidt    ADDR(idt_ptr)
        mov     $LAPIC_BASE, %eax
        movl    $(0x100 | VEC_SPURIOUS), 0xf0(%rax)    /* SVR: APIC enable */
        movl    $0x10000, 0x350(%rax)   /* LVT LINT0 masked: no 8259 ExtINT */
        pushq   $(SEL_UDATA | 3)
        pushq   $user_stack_top
        pushq   $USER_RFLAGS
        pushq   $(SEL_UCODE | 3)
        pushq   $user_entry
        iretq

/* ---------------------------------------------------------------------
 * Interrupt stubs. The timer stub is the only one on a hot path.
 * ------------------------------------------------------------------- */
        .balign 16
timer_isr:
        incq    irq_count(%rip)
        push    %rax
        mov     $LAPIC_BASE, %eax
        movl    $0, 0xb0(%rax)          /* EOI */
        pop     %rax
        iretq

/*
 * #GP: the in/out fallback. Hypervisors that run guest ring 3 as host
 * user code (e.g. KVM PVM) ignore RFLAGS.IOPL, so ring-3 port I/O faults
 * there; trap.c io_emulate() performs it on ring 3's behalf. Anything it
 * does not recognise is reported like any other exception.
 * Frame on entry: error, rip, cs, rflags, rsp, ss (RSP is 16-aligned).
 */
        .balign 16
gp_isr:
        push    %r11
        push    %r10
        push    %r9
        push    %r8
        push    %rdi
        push    %rsi
        push    %rdx
        push    %rcx
        push    %rax
        mov     %rsp, %rdi              /* struct io_frame * */
        sub     $8, %rsp
        call    io_emulate
        add     $8, %rsp
        test    %al, %al
        pop     %rax
        pop     %rcx
        pop     %rdx
        pop     %rsi
        pop     %rdi
        pop     %r8
        pop     %r9
        pop     %r10
        pop     %r11
        jz      1f
        add     $8, %rsp                /* error code */
        iretq
1:      pushq   $13
        jmp     exc_common

        .balign 16
spurious_isr:
        iretq                           /* spurious: no EOI (SDM 10.9) */

/*
 * Exception stubs, 16 bytes each so that stub N is at exc_stubs + 16*N.
 * Each pushes a 0 error code where the CPU does not, then the vector.
 */
        .balign 16
exc_stubs:
        .set    vec, 0
        .rept   32
        .balign 16
        .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
        .else
        pushq   $0
        .endif
        pushq   $vec
        jmp     exc_common
        .set    vec, vec + 1
        .endr

exc_common:
        mov     %rsp, %rdi              /* struct trap_frame * */
        and     $-16, %rsp
        call    trap_report             /* does not return */
1:      cli
        hlt
        jmp     1b

/* ---------------------------------------------------------------------
 * AP trampoline. Copied by ring 3 to AP_TRAMPOLINE_PHYS (guest.h) and
 * started with SIPI vector AP_TRAMPOLINE_PHYS >> 12, so it runs at
 * CS:IP = (AP_TRAMPOLINE_PHYS >> 4):0000 in real mode. It goes straight
 * to long mode (PE and PG set together, SDM 9.8.5) on the BSP's page
 * tables and GDT, bumps ap_count and halts with interrupts off.
 * ------------------------------------------------------------------- */
#define AP_TRAMPOLINE_PHYS 0x8000
#define TADDR(label)    (AP_TRAMPOLINE_PHYS + ((label) - ap_trampoline_start))

        .code16
        .globl ap_trampoline_start, ap_trampoline_end
ap_trampoline_start:
        cli
        xor     %ax, %ax
        mov     %ax, %ds
        lgdtl   TADDR(ap_gdt_ptr)
        mov     $CR4_VALUE, %eax
        mov     %eax, %cr4
        mov     $ADDR(pml4), %eax
        mov     %eax, %cr3
        mov     $MSR_EFER, %ecx
        xor     %edx, %edx
        mov     $EFER_LME, %eax
        wrmsr
        mov     $CR0_VALUE, %eax
        mov     %eax, %cr0
        ljmpl   $SEL_KCODE, $ADDR(ap_long_entry)
        .balign 4
ap_gdt_ptr:
        .word   gdt_end - gdt - 1
        .long   ADDR(gdt)
ap_trampoline_end:

        .code64
ap_long_entry:
        mov     $1, %eax
        lock xadd %eax, ap_count(%rip)
1:      cli
        hlt
        jmp     1b

/* ---------------------------------------------------------------------
 * Descriptor tables.
 * ------------------------------------------------------------------- */
        .balign 16
gdt:
        .quad   0
        .quad   0x00af9a000000ffff      /* 0x08 kernel code, 64-bit */
        .quad   0x00cf92000000ffff      /* 0x10 kernel data */
        .quad   0x00cff2000000ffff      /* 0x18 user data, DPL 3 */
        .quad   0x00affa000000ffff      /* 0x20 user code, 64-bit, DPL 3 */
        /* 0x28 TSS: 64-bit available TSS, limit 103, no I/O bitmap */
        .word   tss_end - tss - 1
        .word   ADDR(tss) & 0xffff
        .byte   (ADDR(tss) >> 16) & 0xff
        .byte   0x89
        .byte   0x00
        .byte   (ADDR(tss) >> 24) & 0xff
        .long   0
        .long   0
gdt_end:

        .balign 4
        .word   0
gdt_ptr:
        .word   gdt_end - gdt - 1
        .quad   ADDR(gdt)

        .balign 16
tss:
        .long   0
        .quad   kstack_top              /* RSP0: stack for ring 3 -> 0 */
        .quad   0, 0                    /* RSP1, RSP2 */
        .quad   0                       /* reserved */
        .quad   0, 0, 0, 0, 0, 0, 0     /* IST1..7 */
        .quad   0                       /* reserved */
        .word   0
        .word   tss_end - tss           /* I/O map base past the limit */
tss_end:

/* 64-bit interrupt gate, DPL 0, present. */
.macro GATE target
        .word   ADDR(\target) & 0xffff
        .word   SEL_KCODE
        .word   0x8e00
        .word   (ADDR(\target) >> 16) & 0xffff
        .long   0
        .long   0
.endm

        .balign 16
idt:
        .set    vec, 0
        .rept   256
        .if vec == 13
        GATE    gp_isr
        .elseif vec < 32
        GATE    (exc_stubs + 16 * vec)
        .elseif vec == VEC_TIMER
        GATE    timer_isr
        .elseif vec == VEC_SPURIOUS
        GATE    spurious_isr
        .else
        .quad   0, 0
        .endif
        .set    vec, vec + 1
        .endr
idt_end:

        .balign 4
        .word   0
idt_ptr:
        .word   idt_end - idt - 1
        .quad   ADDR(idt)

/*
 * Page tables: identity map of 0-4 GiB with 2 MiB pages, user-accessible
 * and writable, Accessed/Dirty preset so the CPU never writes them.
 */
#define PTE_TABLE       0x27            /* P | RW | US | A */
#define PTE_LARGE       0xe7            /* P | RW | US | A | D | PS */
        .balign 4096
pml4:
        .quad   ADDR(pdpt) + PTE_TABLE
        .fill   511, 8, 0
pdpt:
        .quad   ADDR(pd) + PTE_TABLE
        .quad   ADDR(pd) + 0x1000 + PTE_TABLE
        .quad   ADDR(pd) + 0x2000 + PTE_TABLE
        .quad   ADDR(pd) + 0x3000 + PTE_TABLE
        .fill   508, 8, 0
pd:
        .set    page, 0
        .rept   2048
        .quad   page + PTE_LARGE
        .set    page, page + 0x200000
        .endr


/* ---------------------------------------------------------------------
 * PVH ELF note (Xen public/elfnote.h, XEN_ELFNOTE_PHYS32_ENTRY = 18).
 * The descriptor is 8 bytes like Linux's; readers use the low 32 bits.
 * ------------------------------------------------------------------- */
        .section .note.pvh, "a", @note
        .balign 4
        .long   4                       /* namesz */
        .long   8                       /* descsz */
        .long   18                      /* type */
        .asciz  "Xen"
        .balign 4
        .quad   ADDR(pvh_entry)

/* ---------------------------------------------------------------------
 * Ring-3 entry: the boot marker is the first thing ring 3 does.
 * ------------------------------------------------------------------- */
        .text
        .globl user_entry
user_entry:
        mov     $0x440, %dx
        xor     %eax, %eax
        outb    %al, %dx
        call    guest_main              /* %rdi = struct hvm_start_info * */
1:      pause
        jmp     1b

        .bss
        .balign 16
        .skip   65536
user_stack_top:
/* Stack for interrupts and exceptions taken from ring 3 (TSS.RSP0). */
        .skip   16384
kstack_top:

        .section .note.GNU-stack, "", @progbits
