//! Fuzzes the hybrid-vsock handshake with arbitrary VMM answers: it must return (accepting
//! only `OK ` lines) and leave every byte after the reply's newline unread.
#![no_main]

use kata_runtime::console::dial::{check_reply, handshake};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fuzz_target!(|data: &[u8]| {
    let _ = check_reply(data, 1026);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut client, mut vmm) = tokio::io::duplex(1 << 16);
        let reply = data.to_vec();
        let server = tokio::spawn(async move {
            let mut buf = [0u8; 32];
            let _ = vmm.read(&mut buf).await;
            let _ = vmm.write_all(&reply).await;
        });
        let result = handshake(&mut client, 1026).await;
        server.await.unwrap();
        if let Ok(line) = result {
            assert!(line.starts_with("OK "));
            let nl = data.iter().position(|&b| b == b'\n').expect("accepted without a newline");
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
            assert_eq!(&rest[..], &data[nl + 1..]);
        }
    });
});
