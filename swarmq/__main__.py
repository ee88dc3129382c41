from swarmq.cli.app import main

main()
