from rollout_yaml.cli.main import main

main()
